"""Every command in the README's and the docs' shell blocks runs as written (#15).

Each ```bash / ```sh / ```shell block of README.md, models/README.md and docs/**/*.md is split into commands
(``\\`` continuations joined, comments dropped, ``&&`` chains split, leading ``VAR=value`` skipped), and each
command is checked by the rule for its program, as far as that is cheap: the console script exists and every
``--flag`` it is given appears in its ``--help``; ``sim2real-launch`` arguments parse; ``ros2 launch`` arguments are
the launch file's declared arguments with valid values; ``ros2 run`` names an installed node executable and
parameters it declares; ``python -m`` modules import; ``make`` targets exist. Every path into the repository (or
``../shared``) that a command names must exist; paths outside it (``/data/...``, ``runs/...``) are the user's.
A program without a rule fails the test, so a new kind of command gets a rule when it is documented.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", REPO / "models" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.M | re.S)
_REPO_PATH = re.compile(r"^(?:\./)?(?:config|launch|models|docs|scripts|benchmarks|test|sim2real|sim_bridge|ros2_ws"
                        r"|requirements)/[\w./-]*[\w/]$")


@dataclass(frozen=True)
class Command:
    """One documented command: where it is, and its words (``argv``)."""

    where: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def documented_commands() -> list[Command]:
    """Every command of every shell block, in document order."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for block in _BLOCK.finditer(text):
            first_line = text.count("\n", 0, block.start(1)) + 1
            for lineno, line in _logical_lines(block.group(1), first_line):
                words = shlex.split(line, comments=True)
                for chain in _split_chain(words):
                    argv = list(itertools.dropwhile(lambda w: re.match(r"^[A-Z_][A-Z0-9_]*=", w), chain))  # VAR=v
                    if argv:
                        out.append(Command(f"{doc.relative_to(REPO)}:{lineno}", tuple(argv)))
    return out


def _logical_lines(block: str, first_line: int) -> list[tuple[int, str]]:
    lines, pending, start = [], "", first_line
    for k, line in enumerate(block.splitlines()):
        if not pending:
            start = first_line + k
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            lines.append((start, pending))
        pending = ""
    return lines


def _split_chain(words: list[str]) -> list[list[str]]:
    chains: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", ";", "||"):
            chains.append([])
        else:
            chains[-1].append(word)
    return chains


# ------------------------------------------------------------------------------------------------ the rules


def check_paths(cmd: Command) -> None:
    """Every repository (or ../shared) path the command names exists."""
    for word in cmd.argv:
        for part in (word, word.partition(":=")[2], word.partition("=")[2]):
            token = part.strip("[]'\",")
            if token.startswith("../shared/"):
                assert (REPO / token).exists(), f"{cmd}: {token} does not exist"
            elif _REPO_PATH.match(token) and not token.startswith("ros2_ws/install"):
                assert (REPO / token).exists(), f"{cmd}: {token} does not exist in the repository"


@functools.cache
def help_text(program: tuple[str, ...]) -> str:
    result = subprocess.run([*program, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, f"{' '.join(program)} --help failed: {result.stderr[-2000:]}"
    return result.stdout


def check_flags(cmd: Command, program: tuple[str, ...], args: tuple[str, ...]) -> None:
    """Each ``--flag`` given is one the program's ``--help`` lists."""
    text = help_text(program)
    for arg in args:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", text), f"{cmd}: {flag} is not an option of it"


def console_script(cmd: Command) -> None:
    exe = BIN / cmd.argv[0]
    assert exe.is_file(), f"{cmd}: {cmd.argv[0]} is not installed in the venv (setup.py console_scripts)"
    if cmd.argv[0] == "sim2real-launch":
        from sim2real.runtime.launcher import parse_args

        parse_args(list(cmd.argv[1:]))  # ConfigError names a wrong argument
        return
    sub = cmd.argv[1:2] if cmd.argv[0] == "sim2real-sim" else ()  # a sub-command with its own options
    check_flags(cmd, (str(exe), *sub), cmd.argv[1 + len(sub):])


def launch_arguments(file: str) -> dict[str, tuple[str, ...] | None]:
    """Declared arguments of a launch file -> their allowed values (None: any)."""
    if file == "translate.launch.py":
        from sim2real.runtime.launch_description import ARGUMENTS

        return {name: arg.choices for name, arg in ARGUMENTS.items()}
    from sim2real.nodes.trainer_node import LAUNCH_ARGUMENTS

    return {name: choices for name, (_d, _desc, choices) in LAUNCH_ARGUMENTS.items()}


def node_parameters(node: str) -> set[str]:
    if node == "translate_node":
        from sim2real.nodes.translate.params import parameter_table

        return {name for name, _, _ in parameter_table()}
    module = importlib.import_module(f"sim2real.nodes.{node}")
    return {name for name, _, _ in module._parameter_table()}  # each node's declared table


def ros2(cmd: Command) -> None:
    verb = cmd.argv[1]
    if verb == "launch":
        package, file, *args = cmd.argv[2:]
        assert package == "sim2real" and (REPO / "launch" / file).is_file(), f"{cmd}: no launch/{file}"
        declared = launch_arguments(file)
        values = {}
        for arg in args:
            if arg == "--show-args":
                continue
            name, sep, value = arg.partition(":=")
            assert sep and name in declared, f"{cmd}: {name!r} is not an argument of {file} ({', '.join(declared)})"
            assert declared[name] is None or value in declared[name], f"{cmd}: {name}:={value} not in {declared[name]}"
            values[name] = value
        if file == "translate.launch.py":
            from sim2real.runtime.launch_description import LaunchConfig

            LaunchConfig.from_strings(values)
    elif verb == "run":
        package, node, *args = cmd.argv[2:]
        assert package == "sim2real" and (REPO / "scripts" / "nodes" / node).is_file(), f"{cmd}: no node {node}"
        declared = node_parameters(node)
        for flag, value in itertools.pairwise(args):
            if flag == "-p":
                assert value.partition(":=")[0] in declared, f"{cmd}: {node} declares no parameter {value!r}"
    elif verb == "service":
        assert cmd.argv[2] == "call"
        package, _, name = cmd.argv[4].partition("/srv/")
        assert hasattr(importlib.import_module(f"{package}.srv"), name), f"{cmd}: no service type {cmd.argv[4]}"
    else:
        assert verb in ("bag", "topic", "param", "node", "pkg"), f"{cmd}: no rule for ros2 {verb}"


def python(cmd: Command) -> None:
    args = list(cmd.argv[1:])
    if args[0] == "-m":
        assert importlib.util.find_spec(args[1]) is not None, f"{cmd}: module {args[1]} does not import"
    else:
        assert (REPO / args[0]).is_file(), f"{cmd}: {args[0]} does not exist"
        check_flags(cmd, (sys.executable, str(REPO / args[0])), tuple(args[1:]))


def torchrun(cmd: Command) -> None:
    module = cmd.argv[cmd.argv.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None, f"{cmd}: module {module} does not import"


def make(cmd: Command) -> None:
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    assert set(cmd.argv[1:]) <= targets, f"{cmd}: Makefile has no target {set(cmd.argv[1:]) - targets}"


def source(cmd: Command) -> None:
    path = cmd.argv[1]
    if path == "install/setup.bash":  # made by the `colcon build` before it (ros2_ws/install)
        return
    assert (REPO / path).is_file(), f"{cmd}: {path} does not exist (scripts/setup.sh writes .venv/env.sh)"


def cd(cmd: Command) -> None:
    assert (REPO / cmd.argv[1]).is_dir(), f"{cmd}: no directory {cmd.argv[1]}"


def script(cmd: Command) -> None:
    assert (REPO / cmd.argv[1]).is_file(), f"{cmd}: no script {cmd.argv[1]}"


def colcon(cmd: Command) -> None:
    assert cmd.argv[1] in ("build", "test", "list"), f"{cmd}: no rule for colcon {cmd.argv[1]}"


RULES: dict[str, Callable[[Command], None]] = {
    "ros2": ros2, "python": python, ".venv/bin/python": python, "torchrun": torchrun, "make": make,
    ".": source, "source": source, "cd": cd, "bash": script, "colcon": colcon,
}

COMMANDS = documented_commands()


def test_the_docs_have_shell_blocks_to_check() -> None:
    programs = {c.argv[0] for c in COMMANDS}
    assert {"ros2", "sim2real-launch", "sim2real-translate-bag", "make"} <= programs, programs


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{c.where}:{c.argv[0]}" for c in COMMANDS])
def test_documented_command_runs_as_written(cmd: Command) -> None:
    check_paths(cmd)
    program = cmd.argv[0]
    if program.startswith("sim2real-") or program == "carla_spawn_cameras":
        console_script(cmd)
    else:
        assert program in RULES, f"{cmd}: no rule for {program!r}: add one to test/test_docs_commands.py"
        RULES[program](cmd)


@pytest.mark.parametrize(("line", "error"), [
    ("sim2real-eval --model models/lite.safetensors --out out/x", "models/lite.safetensors does not exist"),
    ("ros2 launch sim2real translate.launch.py sauce:=builtin", "'sauce' is not an argument"),
    ("ros2 launch sim2real translate.launch.py record:=maybe", "record:=maybe not in"),
    ("sim2real-translate-bag a b --model m.safetensors --compresss jpeg", "--compresss is not an option"),
    ("ros2 run sim2real translate_node --ros-args -p modle:=x", "declares no parameter 'modle:=x'"),
    ("make demos", "Makefile has no target"),
])
def test_the_checks_can_fail(line: str, error: str) -> None:
    cmd = Command("planted", tuple(shlex.split(line)))
    with pytest.raises(AssertionError, match=re.escape(error)):
        test_documented_command_runs_as_written(cmd)

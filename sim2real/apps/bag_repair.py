"""``sim2real-bag-repair``: make a recording whose writer was killed (or ran out of disk) a readable bag.

    sim2real-bag-repair BAG

Checks every storage file of BAG, salvages the complete chunks of a cut mcap file (the unfinished split that
record_node leaves in ``BAG/<name>_<k>/``, or the lone file of a killed single-file writer), rolls back the
journal of a killed sqlite3 file, removes unfinished splits that hold no message, and rewrites
``BAG/metadata.yaml`` from what the files hold (:mod:`sim2real.io.bag_repair`). Refuses a bag a live recorder
still writes. Prints what it did.

Exit status: 0 repaired (or nothing to do), 1 the disk failed while repairing, 2 BAG is not a bag directory, is
being written, or its storage cannot be told.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final

from sim2real.core.errors import BagError
from sim2real.io.bag_repair import repair_bag

__all__ = ["main"]

PROG: Final = "sim2real-bag-repair"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sim2real-bag-repair``; returns the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", metavar="BAG", help="the recording's directory")
    args = parser.parse_args(argv)
    try:
        report = repair_bag(args.bag)
    except BagError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: cannot write to {args.bag}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

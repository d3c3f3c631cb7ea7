"""Flat-shaded rasteriser: one painter's-algorithm pass writes a face-index buffer; RGB, semantic and
instance images are looked up from it, so the three images agree pixel for pixel by construction.

Pipeline per frame (all vectorised except the final fill loop):
boxes -> faces; road coordinates -> world (``x = centre(s) + d, z = s``); back-face culling; world ->
camera (yaw along the road tangent, fixed pitch); near-plane clipping (Sutherland-Hodgman, only for
the few faces that cross it); pinhole projection; off-screen culling; per-face shading (Lambert from
the sun + ambient, emissive materials, distance haze); sort (layer, far-to-near group distance, group,
order); ``cv2.fillConvexPoly`` with ``LINE_8`` (no anti-aliasing) into an int32 index buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sim2real.core.labels import TRAIN_ID

from .config import SimConfig
from .primitives import FACE_BACK, FACE_FRONT, FACE_LEFT, FACE_RIGHT, FACE_TOP, Material, Primitives
from .scene import Road, Scene

__all__ = ["Lighting", "Renderer", "camera_matrix", "lighting_for"]

NEAR = 0.3
SHIFT = 4  # fillConvexPoly sub-pixel bits
SKY_ID = TRAIN_ID["sky"]
WINDOW_LOD_M = 90.0  # window decals farther than this are not drawn

# (bit, normal in (s, d, y), vertex picks (s index, d index, y index) into (lo, hi))
_FACES = (
    (FACE_FRONT, (-1.0, 0.0, 0.0), ((0, 0, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1))),
    (FACE_BACK, (1.0, 0.0, 0.0), ((1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1))),
    (FACE_LEFT, (0.0, -1.0, 0.0), ((0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1))),
    (FACE_RIGHT, (0.0, 1.0, 0.0), ((0, 1, 0), (1, 1, 0), (1, 1, 1), (0, 1, 1))),
    (FACE_TOP, (0.0, 0.0, 1.0), ((0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1))),
)


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a * (1.0 - t) + b * t


def _smoothstep(e0: float, e1: float, x: float) -> float:
    t = min(max((x - e0) / (e1 - e0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Lighting:
    """Light of one time of day. Colours are RGB in [0, 1]; ``sun_dir`` points towards the sun (world)."""

    sun_dir: np.ndarray
    sun_color: np.ndarray
    ambient: np.ndarray
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    fog_color: np.ndarray
    fog_distance: float
    night: float  # 0 day .. 1 night: drives lit windows, headlights, street lamps


def lighting_for(time_of_day: float) -> Lighting:
    """Sun elevation follows a sine over the day (noon 65 deg, sunrise 6 h, sunset 18 h)."""
    phase = 2.0 * math.pi * (time_of_day - 6.0) / 24.0
    elevation = math.radians(65.0) * math.sin(phase)
    azimuth = math.pi * (time_of_day - 6.0) / 12.0
    sun_dir = np.array([math.cos(azimuth) * math.cos(elevation), math.sin(elevation),
                        0.6 * math.sin(azimuth) * math.cos(elevation)])
    sun_dir /= np.linalg.norm(sun_dir)
    day = _smoothstep(math.radians(-8.0), math.radians(10.0), elevation)
    warm = 1.0 - _smoothstep(math.radians(3.0), math.radians(30.0), elevation)  # low sun is orange
    sun_color = _mix(np.array([1.0, 0.96, 0.88]), np.array([1.0, 0.55, 0.28]), warm) * 0.78 * _smoothstep(
        math.radians(-2.0), math.radians(6.0), elevation)
    ambient = _mix(np.array([0.10, 0.11, 0.17]), np.array([0.42, 0.45, 0.52]), day)
    sky_top = _mix(np.array([0.01, 0.015, 0.05]), _mix(np.array([0.22, 0.42, 0.80]),
                                                       np.array([0.25, 0.28, 0.55]), warm), day)
    sky_horizon = _mix(np.array([0.05, 0.06, 0.12]), _mix(np.array([0.70, 0.80, 0.92]),
                                                          np.array([0.98, 0.60, 0.35]), warm), day)
    fog_color = _mix(np.array([0.03, 0.035, 0.06]), sky_horizon * 0.95, day)
    return Lighting(sun_dir, sun_color, ambient, sky_top, sky_horizon, fog_color,
                    fog_distance=_mix(np.array(90.0), np.array(320.0), day).item(), night=1.0 - day)


def camera_matrix(config: SimConfig) -> np.ndarray:
    """The 3x3 intrinsic matrix K of the simulator's pinhole camera."""
    fx, fy, cx, cy = config.intrinsics()
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _clip_planes(kx: float, ky: float) -> np.ndarray:
    """(5, 4) planes (n, c) of the clipping volume ``n . p + c >= 0``: z >= NEAR, |x| <= kx z, |y| <= ky z.

    The side planes lie well outside the image, so only geometry that cannot be seen is cut, and
    projected coordinates stay small enough for ``fillConvexPoly``.
    """
    return np.array([(0.0, 0.0, 1.0, -NEAR), (-1.0, 0.0, kx, 0.0), (1.0, 0.0, kx, 0.0), (0.0, -1.0, ky, 0.0),
                     (0.0, 1.0, ky, 0.0)])


def _clip(poly: list[tuple[float, float, float]], planes: list[tuple[float, float, float, float]],
          ) -> list[tuple[float, float, float]]:
    """Sutherland-Hodgman clip of a camera-space polygon against ``planes`` (only the violated ones).

    Plain Python floats: for a handful of vertices this is much faster than numpy.
    """
    pts = poly
    for nx, ny, nz, c in planes:
        out: list[tuple[float, float, float]] = []
        n = len(pts)
        for i in range(n):
            a, b = pts[i], pts[(i + 1) % n]
            fa = nx * a[0] + ny * a[1] + nz * a[2] + c
            fb = nx * b[0] + ny * b[1] + nz * b[2] + c
            if fa >= 0.0:
                out.append(a)
            if (fa >= 0.0) != (fb >= 0.0):
                r = fa / (fa - fb)
                out.append((a[0] + r * (b[0] - a[0]), a[1] + r * (b[1] - a[1]), a[2] + r * (b[2] - a[2])))
        pts = out
        if not pts:
            break
    return pts


class Renderer:
    """Rasterises :class:`Scene` snapshots for one config (the sky gradient and lighting are precomputed).

    Not thread-safe (it reuses scratch buffers); the returned images are new arrays owned by the caller.
    """

    def __init__(self, config: SimConfig, road: Road) -> None:
        self.config = config
        self.road = road
        self.K = camera_matrix(config)
        self.light = lighting_for(config.time_of_day)
        self.sky = self._sky_image()
        self._sky_index16 = np.ascontiguousarray(np.broadcast_to(
            np.arange(config.height, dtype=np.uint16)[:, None], (config.height, config.width)))
        self._buf16 = np.empty((config.height, config.width), dtype=np.uint16)
        self._rgba32 = np.empty((config.height, config.width), dtype=np.uint32)

    def _sky_image(self) -> np.ndarray:
        cfg, light = self.config, self.light
        fy, cy = self.K[1, 1], self.K[1, 2]
        p = math.radians(cfg.pitch_deg)
        yc = (np.arange(cfg.height) - cy) / fy
        # world y of the ray through (cx, v): down * yc + forward, down_y = -cos p, forward_y = -sin p
        elevation = np.arcsin(np.clip((-math.cos(p) * yc - math.sin(p)) / np.sqrt(1.0 + yc * yc), -1, 1))
        t = np.clip(elevation / 0.7, 0.0, 1.0) ** 0.55
        column = light.sky_horizon[None, :] * (1.0 - t[:, None]) + light.sky_top[None, :] * t[:, None]
        column = np.clip(column * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(column[:, None, :], (cfg.height, cfg.width, 3)))

    def camera_pose(self, ego_s: float, ego_d: float) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), rotation R (3, 3)): rows are the camera's right, down, forward axes in the world."""
        cfg = self.config
        pos = np.array([float(self.road.centre(ego_s)) + ego_d, cfg.camera_height, ego_s])
        yaw = math.atan(float(self.road.slope(ego_s)))
        p = math.radians(cfg.pitch_deg)
        sy, cyw, sp, cp = math.sin(yaw), math.cos(yaw), math.sin(p), math.cos(p)
        R = np.array([[cyw, 0.0, -sy], [-sy * sp, -cp, -cyw * sp], [sy * cp, -sp, cyw * cp]])
        return pos, R

    @staticmethod
    def _faces(prims: Primitives) -> tuple[np.ndarray, ...]:
        """All faces: verts (F, 4, 3) in (s, d, y), normals (F, 3), colours (F, 3), ints (F, 6)."""
        bf, bi = prims.box_f, prims.box_i
        S, D, Y = bf[:, 0:2], bf[:, 2:4], bf[:, 4:6]
        verts, normals, colors, ints = [], [], [], []
        for bit, normal, picks in _FACES:
            sel = (bi[:, 5] & bit) != 0
            if not sel.any():
                continue
            Ss, Ds, Ys = S[sel], D[sel], Y[sel]
            v = np.stack([np.stack([Ss[:, a], Ds[:, b], Ys[:, c]], axis=-1) for a, b, c in picks], axis=1)
            verts.append(v)
            normals.append(np.broadcast_to(np.array(normal), (len(v), 3)))
            colors.append(bf[sel, 6:9])
            fi = bi[sel].copy()
            fi[:, 5] = 1  # box faces are back-face culled
            ints.append(fi)
        qf = prims.quad_f
        verts.append(qf[:, :12].reshape(-1, 4, 3))
        normals.append(qf[:, 12:15])
        colors.append(qf[:, 15:18])
        ints.append(prims.quad_i)
        return np.concatenate(verts), np.concatenate(normals), np.concatenate(colors), np.concatenate(ints)

    def _shade(self, base: np.ndarray, normal_w: np.ndarray, mat: np.ndarray, dist: np.ndarray,
               centre_cam: np.ndarray) -> np.ndarray:
        """Per-face RGB: Lambert (sun) + ambient, ego headlights at night, emissive materials, haze.

        ``centre_cam``: (F, 3) face centres in camera coordinates (x right, y down, z forward).
        """
        light = self.light
        lambert = np.clip(normal_w @ light.sun_dir, 0.0, None)
        lit = base * (light.ambient[None, :] + light.sun_color[None, :] * lambert[:, None])
        night = light.night
        if night > 0.05:  # the ego car's low beams: a widening band ahead, fading over 50 m
            x, z = centre_cam[:, 0], centre_cam[:, 2]
            beam = np.clip(1.0 - (np.abs(x) - 2.0 - 0.25 * np.maximum(z, 0.0)) / 3.0, 0.0, 1.0)
            beam *= np.clip(1.0 - z / 50.0, 0.0, 1.0) ** 2 * (z > -4.0)
            lit += base * (1.1 * night * beam)[:, None] * np.array([1.0, 0.95, 0.82])
        emit = np.zeros(len(base))
        emit_color = base.copy()
        for m, weight, color in (
            (Material.WINDOW, night, (1.0, 0.82, 0.5)),
            (Material.HEADLIGHT, 0.2 + 0.8 * night, (1.0, 0.97, 0.85)),
            (Material.TAILLIGHT, 0.3 + 0.6 * night, (0.95, 0.1, 0.08)),
            (Material.LAMP, night, (1.0, 0.92, 0.7)),
            (Material.SIGNAL, 1.0, None),
            (Material.EMISSIVE, 1.0, None),
        ):
            sel = mat == m
            if sel.any():
                emit[sel] = weight
                if color is not None:
                    emit_color[sel] = color
        glass = mat == Material.GLASS
        lit[glass] = base[glass] * (light.ambient + 0.35 * light.sun_color) + 0.08 * light.sky_horizon
        rgb = lit * (1.0 - emit[:, None]) + emit_color * emit[:, None]
        fog = (1.0 - np.exp(-dist / light.fog_distance))[:, None] * 0.85
        rgb = rgb * (1.0 - fog) + light.fog_color[None, :] * fog
        return np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)

    def render(self, scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, semantic (H, W) uint8 train ids, instance (H, W) uint16) of ``scene``."""
        cfg = self.config
        H, W = cfg.height, cfg.width
        fx, fy, cx, cy = cfg.intrinsics()
        prims = scene.primitives
        verts, normals, colors, ints = self._faces(prims)
        group, order, cls, inst, mat, cull = ints.T

        # road coordinates -> world
        s = verts[..., 0]
        x = self.road.centre(s) + verts[..., 1]
        world = np.stack([x, verts[..., 2], s], axis=-1)
        m = self.road.slope(verts[:, :, 0].mean(axis=1))
        inv = 1.0 / np.sqrt(1.0 + m * m)
        ns, nd, ny = normals[:, 0], normals[:, 1], normals[:, 2]
        normal_w = np.stack([(ns * m + nd) * inv, ny, (ns - nd * m) * inv], axis=-1)

        cam_pos, R = self.camera_pose(scene.ego_s, scene.ego_d)
        centre_w = world.mean(axis=1)
        to_cam = cam_pos[None, :] - centre_w
        dist = np.sqrt((to_cam * to_cam).sum(axis=1))
        keep = (cull == 0) | ((normal_w * to_cam).sum(axis=1) > 1e-9)
        keep &= ~(((mat == Material.WINDOW) | (mat == Material.GLASS)) & (dist > WINDOW_LOD_M))
        cam = (world - cam_pos) @ R.T  # (F, 4, 3)
        zc = cam[..., 2]
        behind = zc < NEAR
        keep &= ~behind.all(axis=1)
        crossing = keep & behind.any(axis=1)
        zs = np.where(behind, 1.0, zc)
        u = fx * cam[..., 0] / zs + cx
        v = fy * cam[..., 1] / zs + cy
        on_screen = ~((u.max(1) < -1) | (u.min(1) > W) | (v.max(1) < -1) | (v.min(1) > H))
        keep &= on_screen | crossing
        huge = (np.abs(u - cx) > 4 * W).any(axis=1) | (np.abs(v - cy) > 4 * H).any(axis=1)
        needs_clip = crossing | (keep & huge)

        return self._rasterize(scene, u=u, v=v, cam=cam, keep=keep, needs_clip=needs_clip,
                               face_data=(colors, normal_w, mat, dist, cls, inst), group=group, order=order)

    def _rasterize(
        self, scene: Scene, *, u: np.ndarray, v: np.ndarray, cam: np.ndarray, keep: np.ndarray,
        needs_clip: np.ndarray, face_data: tuple[np.ndarray, ...], group: np.ndarray, order: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sort the kept faces (painter's order), fill them into the index buffer, look up the images."""
        colors, normal_w, mat, dist, cls, inst = face_data
        cfg = self.config
        H, W = cfg.height, cfg.width
        fx, fy, cx, cy = cfg.intrinsics()
        prims = scene.primitives
        idx = np.flatnonzero(keep)
        # sort: layer, far-to-near group distance, group, order within group
        gf = prims.group_f
        es, ed = scene.ego_s, scene.ego_d
        gds = np.maximum(np.maximum(gf[:, 0] - es, es - gf[:, 1]), 0.0)
        gdd = np.maximum(np.maximum(gf[:, 2] - ed, ed - gf[:, 3]), 0.0)
        gkey = np.hypot(gds, gdd)
        g = group[idx]
        ranking = np.lexsort((order[idx], g, -gkey[g], prims.group_layer[g]))
        idx = idx[ranking]

        pts = np.empty((len(idx), 4, 2), dtype=np.int32)
        scale = float(1 << SHIFT)
        clip_rows = needs_clip[idx]
        pts[..., 0] = np.rint(np.where(clip_rows[:, None], 0.0, u[idx]) * scale)
        pts[..., 1] = np.rint(np.where(clip_rows[:, None], 0.0, v[idx]) * scale)
        polys: list[np.ndarray | None] = list(pts)
        rows = np.flatnonzero(clip_rows)
        if len(rows):
            focal, centre = np.array([fx, fy]), np.array([cx, cy])
            planes = _clip_planes(3.0 * W / fx, 3.0 * H / fy)
            corners = cam[idx[rows]]  # (R, 4, 3)
            violated = ((corners @ planes[:, :3].T + planes[:, 3]) < 0.0).any(axis=1)  # (R, 5)
            plane_list = planes.tolist()
            for j, face, bad in zip(rows.tolist(), corners.tolist(), violated.tolist(), strict=True):
                clipped = _clip(face, [pl for pl, b in zip(plane_list, bad, strict=True) if b])
                if len(clipped) < 3:
                    polys[j] = None
                    continue
                c = np.asarray(clipped)
                polys[j] = np.rint((c[:, :2] / c[:, 2:3] * focal + centre) * scale).astype(np.int32)

        # index buffer: rows start as sky entries 0..H-1 (the precomputed gradient), faces follow
        n = H + len(idx)
        # scratch buffers are reused between frames (no page-fault churn on fresh ~1 MB allocations)
        buf = self._buf16 if n <= 65535 else self._sky_index16.astype(np.int32)
        if n <= 65535:
            np.copyto(buf, self._sky_index16)
        fill = cv2.fillConvexPoly
        line = cv2.LINE_8
        for j, poly in enumerate(polys, start=H):
            if poly is not None:
                fill(buf, poly, j, line, SHIFT)

        rgb = self._shade(colors[idx], normal_w[idx], mat[idx], dist[idx], cam[idx].mean(axis=1))
        return self._lookup(buf, rgb, cls[idx], inst[idx])

    def _lookup(self, buf: np.ndarray, face_rgb: np.ndarray, face_cls: np.ndarray, face_inst: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images from the index buffer: entries 0..H-1 are the sky rows, H.. the drawn faces."""
        H, W = buf.shape
        n = H + len(face_rgb)
        # colour table packed as RGBA uint32: one gather, then a fast RGBA -> RGB copy
        rgba_table = np.zeros((n, 4), dtype=np.uint8)
        rgba_table[:H, :3] = self.sky[:, 0]
        rgba_table[H:, :3] = face_rgb
        rgba = np.take(rgba_table.view(np.uint32).ravel(), buf, out=self._rgba32, mode="clip")
        rgba = rgba.view(np.uint8).reshape(H, W, 4)
        sem_table = np.empty(n, dtype=np.uint8)
        sem_table[:H] = SKY_ID
        sem_table[H:] = face_cls
        inst_table = np.zeros(n, dtype=np.uint16)
        inst_table[H:] = face_inst
        return (cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), np.take(sem_table, buf, mode="clip"),
                np.take(inst_table, buf, mode="clip"))

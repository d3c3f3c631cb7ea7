"""Road cross-section of the procedural world: lateral offsets ``d`` in metres (positive = right of the centre line).

Shared by the street builders (:mod:`.street`), the agent builders (:mod:`.agents`) and the world (:mod:`.scene`).
"""

from __future__ import annotations

__all__ = ["BUILDING_LINE", "CAR_LANES_HALF", "EGO_D", "LANE_WIDTH", "ROAD_HALF", "SIDEWALK_OUT", "TERRAIN_OUT"]

LANE_WIDTH = 3.5
CAR_LANES_HALF = 7.0  # car lanes span [-7, 7]
ROAD_HALF = 8.5  # plus a 1.5 m bike lane each side
SIDEWALK_OUT = 12.0
TERRAIN_OUT = 45.0
BUILDING_LINE = 15.0
EGO_D = 1.75  # ego drives in the inner right lane

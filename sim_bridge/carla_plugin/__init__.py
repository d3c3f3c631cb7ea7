"""CARLA client-side plugin: spawn synchronised cameras and publish canonical topics (see spawn_cameras)."""

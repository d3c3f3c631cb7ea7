"""Training: datasets over bags, folders or the procedural simulator, and the Trainer (torch only)."""

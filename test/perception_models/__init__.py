"""Stand-ins for a user's perception models, loaded by sim2real-perception-check through their entry points."""

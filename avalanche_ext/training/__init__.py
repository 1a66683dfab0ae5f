"""Training routines that run outside a continual stream (pretraining a backbone), and their file helpers."""

"""Training: batches, the trainer loop, run directories and seeds."""

"""Training only: one run from a recipe (`runner`), the trainer loop, data-parallel processes, interrupts and seeds.
What prediction shares with training (run directories, batches, device and precision) lives outside this package."""

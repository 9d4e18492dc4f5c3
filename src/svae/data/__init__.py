"""Data sets: where they live (store), and one loader per data set."""

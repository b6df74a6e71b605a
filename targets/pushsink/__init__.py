"""The push sink: stands for the user's phone / push provider and is the run's ground truth."""

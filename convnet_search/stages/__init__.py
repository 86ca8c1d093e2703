"""The stages of a run, one module per stage, and the contract they share."""

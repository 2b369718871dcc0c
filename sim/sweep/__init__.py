"""The run engine over a range: signing algorithms side by side, and rates up to the knee."""

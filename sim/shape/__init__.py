"""The load's shape: scenarios and their weights, stages over time, the send schedule."""

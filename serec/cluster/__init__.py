"""Cluster set-up: per-node preparation and what fits on the cluster's node types."""

"""Metrics: every family and its name, rendering at poll time, and the exposition bytes a scrape serves."""

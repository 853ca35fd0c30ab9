"""Helpers of the test suite: local sites and servers, S3, probes, factories."""

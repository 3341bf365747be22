"""Validation: run workloads for real on this machine and compare with the estimator."""

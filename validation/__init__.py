"""Validation of the simulator against real GPU timings: readers, scoring, reports and the timing harness.

Imports gpusim (never planner); torch only inside validation.measure, matplotlib only in validation.report.
"""

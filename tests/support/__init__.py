"""What the test suites share: a manual clock, simulators, ground truth, an engine rig."""

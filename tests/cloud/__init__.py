"""Tests of the CVM client edge: classification, rate limits, wire, simulator."""

"""The analysis layer: theory for the two-point setting, phase detection, comparisons.

Imports the engine layer only.
"""

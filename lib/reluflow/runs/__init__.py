"""The runs layer: run configurations, parameter sweeps, result caches and the command line.

Imports the engine and analysis layers (the command line also draws one figure).
"""

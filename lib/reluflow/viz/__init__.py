"""The figures layer: static figures, animations and the live explorer.

Imports the engine and analysis layers.
"""

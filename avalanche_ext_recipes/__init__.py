"""The pack's recipes, one module per method, grouped by taxonomy family.

They register themselves with :func:`avalanche_ext.registry.register` when imported; the registry
finds this package through the ``avalanche_ext.recipes`` entry-point group.
"""

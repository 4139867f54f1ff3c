"""The native libraries of ``plugins/``: where they are (:mod:`.paths`) and how they are built (:mod:`.build`)."""

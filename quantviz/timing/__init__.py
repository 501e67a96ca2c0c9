"""Where the time goes: ETDump profiles of the program (and of the float model lowered the same way), placed on
quantviz's nodes and patterns (``place``), summed per place (``latency``), for a pipeline (``measure``) or a
device's own ETDump (``device``)."""

"""Graph passes of quantviz's own, one a file: each takes an ExportedProgram and returns it."""

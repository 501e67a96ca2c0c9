"""quantviz's graphs in other tools' formats (``model_explorer``: Google's Model Explorer, extra ``quantviz[explorer]``)."""

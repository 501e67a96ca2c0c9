"""Streamlit-only pieces of the app (the library in quantviz/ never imports these)."""

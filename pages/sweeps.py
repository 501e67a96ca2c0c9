"""The app's Sweeps page (Streamlit finds files in pages/ and lists them beside the main page)."""
import streamlit as st

from ui.state import init_state
from ui.sweep_page import sweep_page

st.set_page_config(page_title="quantviz sweeps", layout="wide")
init_state()

sweep_page()

"""The app's Backends page: one model on every installed backend, side by side."""
import streamlit as st

from ui.backends_page import backends_page
from ui.state import init_state

st.set_page_config(page_title="quantviz backends", layout="wide")
init_state()

backends_page()

"""The app's Recover page (Streamlit finds files in pages/ and lists them beside the main page)."""
import streamlit as st

from ui.recover_page import recover_page
from ui.state import init_state

st.set_page_config(page_title="quantviz recover", layout="wide")
init_state()

recover_page()

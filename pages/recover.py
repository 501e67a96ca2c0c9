"""The app's Recover page (Streamlit finds files in pages/ and lists them beside the main page)."""
import streamlit as st

from ui.recover_page import recover_page

st.set_page_config(page_title="quantviz recover", layout="wide")

recover_page()

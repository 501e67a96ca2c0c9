"""The app's Device page: a device's ETDump placed on the sidebar's run."""
import streamlit as st

from ui.device_page import device_page
from ui.state import init_state

st.set_page_config(page_title="quantviz device", layout="wide")
init_state()

device_page()

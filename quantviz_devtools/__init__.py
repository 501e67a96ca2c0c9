"""Helpers the tests and the benchmarks share, public so neither imports the other's private files.

- ``quantviz_devtools.browser``: start ``streamlit run app.py`` on a free port, drive headless Chromium through
  selenium, find and click things across Streamlit's reruns;
- ``quantviz_devtools.tools``: the external programs and optional modules they need (skip locally, fail under
  ``CI=true``).

Not part of the library: ``quantviz/`` never imports this package (``scripts/layers.py`` checks it), and selenium
and pytest, which these helpers use, are only in the ``dev`` extra.

    from quantviz_devtools.browser import chrome_driver, go_to_stage, running_app

    with running_app({"QUANTVIZ_DEFAULT_MODEL": "sample:digits_cnn"}) as url:
        d = chrome_driver(); d.get(url)
        go_to_stage(d, "fuse")
"""

"""The Gradio demo (a Hugging Face Space): paste links or upload files, see the verdict and why.

`app.py` is the entry point and only wires widgets; `analysis.py` turns an upload or links into what the widgets
show by calling the core (`detector`), `downloads.py` writes the files a visitor can take away.
"""

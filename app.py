"""The Hugging Face Space's `app_file` (gradio_demo/README.md): the Space runs `python app.py` in the folder that
gradio_demo/build_space.py assembles, where `detector/` and `gradio_demo/` lie beside this file, so they import as
they are; in a checkout with the project installed, `python app.py` serves the same demo. Nothing else lives here:
the demo is gradio_demo/app.py (`deepfake-demo`, `python -m gradio_demo.app`)."""

from gradio_demo.app import main

if __name__ == "__main__":
    main()

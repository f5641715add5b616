"""The served model as a format, shared by training (`ml/`) and serving (`services/inference`):
how an upload is decoded and preprocessed, the graph's tensor names, the card beside the ONNX
file (read and written by one class), and the ONNX Runtime classifier. Torch-free."""

"""The engine: saliency maps from a model and a batch of images.

- `engine`: `Explainer` / `compute_saliency`, batched and compiled once per method;
- `methods`: Vanilla, SmoothGrad, IntegratedGradients, GradCAM (what to differentiate);
- `graph`: the score graph a method differentiates (Grad-CAM's layer, the target);
- `inputs`, `postprocess`: checking what comes in, reducing and normalising what goes out;
- `metrics`: how much of a map falls on the object (`mass_in_mask`, `hotspot`, ...);
- `backends/`: one gradient contract, implemented for TensorFlow, JAX and PyTorch.

Nothing here imports the callback.
"""

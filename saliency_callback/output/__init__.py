"""What is written: pictures, TensorBoard summaries and reports.

- `render`: maps to overlays and panels (colour maps, captions);
- `timeline`, `box_panels`: the overview images;
- `writer`: one run's TensorBoard event files;
- `report`: a static HTML/PNG report read back from a log dir;
- `plotting`: `plot_saliency` for notebooks.
"""

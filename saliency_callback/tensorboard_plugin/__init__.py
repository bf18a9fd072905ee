"""The Saliency tab in TensorBoard: every probe at every logged epoch, the verdict and its
evidence on one page (a dynamic TensorBoard plugin).

Installing the package registers it (entry point `tensorboard_plugins`, see `loader`); run
`tensorboard --logdir LOGS` and open the "Saliency" tab. This package imports nothing at import
time: TensorBoard imports `loader`, which defers the plugin's own import to `load`.
"""

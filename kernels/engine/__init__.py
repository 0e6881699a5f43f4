"""The engine: images, shards, Keras model surgery, validation, feature cache, training and evaluation.

Modules here import keras lazily where they can, so that importing the package stays cheap.
"""

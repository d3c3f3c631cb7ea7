"""The parts of ``translate_node``, one job each; :mod:`sim2real.nodes.translate_node` composes them.

* :mod:`.frames`: pure frame logic (no rclpy): the unit of work, checks on arrival, decoding, output encoding,
  the preview, topic names per camera;
* :mod:`.params`: every parameter with its descriptor, and the checks of values at start and at run time;
* :mod:`.model`: loading, warming up and switching the translator;
* :mod:`.inputs`: subscriptions, synchronisers, label watch and the keep-latest hand-off to the worker;
* :mod:`.worker`: the inference thread: decode, batch, translate, publish;
* :mod:`.report`: rate-limited logging, counted publishing, ``/diagnostics``, summaries and the final counters.
"""

"""The ``mlplan`` command line: a thin layer over the pure core (:mod:`planner`), the emitters (:mod:`stacks`,
:mod:`serving`) and the deploy targets. Nothing here holds a decision; every command parses its arguments, calls
the core and prints the result, and heavy libraries are imported inside the command that needs them."""

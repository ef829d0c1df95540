"""``mlplan deploy`` / ``status`` / ``destroy`` / ``preflight``: apply an emitted plan folder for real.

Deploy reads the folder that ``mlplan plan SPEC --out DIR`` writes (never the spec) and records what it
starts in ``DIR/.mlplan/state.json``, one step at a time, so a failed step leaves a truthful record
of what exists.

Targets (``stacks.deploy.targets``):

- ``local``: serve the model on this machine with Ray Serve or Triton (``serving.launch``), smoke-load it.
- ``kubernetes``: server-side apply of ``DIR/k8s/*.yaml`` (+ the RayService) with the ``kubernetes`` client.
- ``pulumi``: run ``DIR/infra`` through Pulumi's Automation API with a local file backend.

AWS checks before a cloud deploy live in ``stacks.deploy.preflight``; the live catalog refresh in
``stacks.deploy.aws_catalog``. Every heavy library is imported inside the function that needs it.
"""

"""``mlplan deploy`` / ``status`` / ``destroy`` / ``preflight``: apply an emitted plan folder for real.

Deploy reads the folder that ``mlplan plan SPEC --out DIR`` writes (never the spec) and records what it
starts in ``DIR/.mlplan/state.json``, one step at a time, so a failed step leaves a truthful record
of what exists; each step is announced as it starts and ends, with its duration.

Targets (``stacks.deploy.targets`` dispatches; each is a :class:`stacks.deploy.target.DeployTarget`):

- ``local``: serve the model on this machine with Ray Serve or Triton (``serving.launch``): loopback-only
  listeners, Ray token authentication, a minimal environment without credentials; smoke-load it.
- ``kubernetes`` (``stacks.deploy.kube``): server-side apply of ``DIR/k8s/*.yaml`` (+ the RayService), only ever to
  objects this deployment created (ownership labels, ``managedFields``).
- ``pulumi``: run ``DIR/infra`` through Pulumi's Automation API with a local file backend.

Account checks before a cloud deploy: ``stacks.deploy.preflight_clouds`` dispatches each cloud part to the AWS
(``preflight``), GCP (``preflight_gcp``) or Azure (``preflight_azure``) checks. The live catalog refresh is
``stacks.deploy.aws_catalog`` / ``azure_catalog``. Every heavy library is imported inside the function that needs it.
"""

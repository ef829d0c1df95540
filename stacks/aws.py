"""AWS building blocks as Pulumi ComponentResources (pulumi-aws 7.x).

Every component takes an explicit ``aws.Provider`` pinned to the plan's region, so nothing lands in a region the
plan (and its ``allowed_regions``) did not choose. Secure by default: private subnets for the workload, no
``0.0.0.0/0`` ingress anywhere, KMS encryption at rest, S3 public access blocked, IMDSv2 only, SSM instead of
SSH, least-privilege IAM (IRSA: the serving pods may only read the model bucket).

References: EKS managed node groups and AMI types
(https://docs.aws.amazon.com/eks/latest/APIReference/API_Nodegroup.html), IRSA
(https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts.html), S3 Block Public Access,
EC2 IMDSv2 (``http_tokens = required``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from planner.plan import SystemPool

VPC_CIDR = "10.40.0.0/16"
PRIVATE_CIDRS = ("10.40.0.0/19", "10.40.32.0/19")
PUBLIC_CIDRS = ("10.40.128.0/24", "10.40.129.0/24")
EKS_VERSION = "1.32"
#: Deep Learning Base AMI with the NVIDIA driver and Docker + NVIDIA container toolkit, via its public SSM parameter.
#: Source: https://docs.aws.amazon.com/dlami/latest/devguide/aws-deep-learning-base-gpu-ami-ubuntu-22-04.html
DLAMI_SSM = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"


def _opts(parent: pulumi.Resource, provider: aws.Provider, **kw: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, provider=provider, **kw)


def _tags(name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Name": name, "managed-by": "mlplan", **(extra or {})}


def assume_role_policy(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def bucket_read_policy(bucket_arn: str, kms_arn: str) -> str:
    """Least privilege for readers of the model bucket: list it, get its objects, decrypt with its key."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ListModelBucket", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket_arn]},
        {"Sid": "ReadModels", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{bucket_arn}/*"]},
        {"Sid": "DecryptModels", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [kms_arn]},
    ]})


class Network(pulumi.ComponentResource):
    """VPC with two private subnets for the workload and two small public subnets holding only the NAT gateway.

    Nothing accepts inbound traffic from the internet: workloads have no public IPs, and egress (image pulls)
    goes through the NAT gateway. An S3 gateway endpoint keeps model downloads on the AWS network.
    """

    def __init__(self, name: str, *, region: str, provider: aws.Provider, eks_cluster_name: str | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:aws:Network", name, None, opts)
        self.cidr = VPC_CIDR
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=VPC_CIDR, enable_dns_hostnames=True,
                               enable_dns_support=True, tags=_tags(f"{name}-vpc"), opts=_opts(self, provider))
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=_tags(f"{name}-igw"),
                                      opts=_opts(self, provider))
        public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=self.vpc.id,
                                       routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
                                       tags=_tags(f"{name}-public"), opts=_opts(self, provider))
        elb_tags = {f"kubernetes.io/cluster/{eks_cluster_name}": "shared"} if eks_cluster_name else {}
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for i, (az, cidr) in enumerate(zip(("a", "b"), PUBLIC_CIDRS, strict=True)):
            sn = aws.ec2.Subnet(f"{name}-public-{az}", vpc_id=self.vpc.id, cidr_block=cidr,
                                availability_zone=f"{region}{az}", map_public_ip_on_launch=False,
                                tags=_tags(f"{name}-public-{az}", {**elb_tags, "kubernetes.io/role/elb": "1"}),
                                opts=_opts(self, provider))
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=sn.id, route_table_id=public_rt.id,
                                          opts=_opts(self, provider))
            self.public_subnets.append(sn)
        eip = aws.ec2.Eip(f"{name}-nat", domain="vpc", tags=_tags(f"{name}-nat"), opts=_opts(self, provider))
        nat = aws.ec2.NatGateway(f"{name}-nat", subnet_id=self.public_subnets[0].id, allocation_id=eip.id,
                                 tags=_tags(f"{name}-nat"), opts=_opts(self, provider, depends_on=[igw]))
        private_rt = aws.ec2.RouteTable(f"{name}-private", vpc_id=self.vpc.id,
                                        routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                                        tags=_tags(f"{name}-private"), opts=_opts(self, provider))
        for i, (az, cidr) in enumerate(zip(("a", "b"), PRIVATE_CIDRS, strict=True)):
            sn = aws.ec2.Subnet(f"{name}-private-{az}", vpc_id=self.vpc.id, cidr_block=cidr,
                                availability_zone=f"{region}{az}", map_public_ip_on_launch=False,
                                tags=_tags(f"{name}-private-{az}",
                                           {**elb_tags, "kubernetes.io/role/internal-elb": "1"}),
                                opts=_opts(self, provider))
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=sn.id, route_table_id=private_rt.id,
                                          opts=_opts(self, provider))
            self.private_subnets.append(sn)
        aws.ec2.VpcEndpoint(f"{name}-s3", vpc_id=self.vpc.id, service_name=f"com.amazonaws.{region}.s3",
                            vpc_endpoint_type="Gateway", route_table_ids=[private_rt.id],
                            tags=_tags(f"{name}-s3"), opts=_opts(self, provider))
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.register_outputs({"vpc_id": self.vpc.id, "private_subnet_ids": self.private_subnet_ids})


class EncryptionKey(pulumi.ComponentResource):
    """A customer-managed KMS key with rotation, for the model bucket, EKS secrets and EBS volumes."""

    def __init__(self, name: str, *, provider: aws.Provider, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:aws:EncryptionKey", name, None, opts)
        self.key = aws.kms.Key(f"{name}-key", description=f"mlplan {name}: models, secrets, volumes",
                               enable_key_rotation=True, deletion_window_in_days=30, tags=_tags(name),
                               opts=_opts(self, provider))
        aws.kms.Alias(f"{name}-alias", name=f"alias/{name}", target_key_id=self.key.key_id,
                      opts=_opts(self, provider))
        self.arn = self.key.arn
        self.register_outputs({"arn": self.arn})


class ModelBucket(pulumi.ComponentResource):
    """The model artifact bucket: KMS encryption, all public access blocked, versioning, TLS-only policy."""

    def __init__(self, name: str, *, bucket_name: str, kms_key_arn: pulumi.Input[str], provider: aws.Provider,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:aws:ModelBucket", name, None, opts)
        self.bucket = aws.s3.Bucket(f"{name}", bucket=bucket_name, force_destroy=False, tags=_tags(bucket_name),
                                    opts=_opts(self, provider))
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse", bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms",
                                                                "kms_master_key_id": kms_key_arn},
                    "bucket_key_enabled": True}],
            opts=_opts(self, provider))
        pab = aws.s3.BucketPublicAccessBlock(f"{name}-public-access", bucket=self.bucket.id,
                                             block_public_acls=True, block_public_policy=True,
                                             ignore_public_acls=True, restrict_public_buckets=True,
                                             opts=_opts(self, provider))
        aws.s3.BucketVersioning(f"{name}-versioning", bucket=self.bucket.id,
                                versioning_configuration={"status": "Enabled"}, opts=_opts(self, provider))
        aws.s3.BucketOwnershipControls(f"{name}-ownership", bucket=self.bucket.id,
                                       rule={"object_ownership": "BucketOwnerEnforced"},
                                       opts=_opts(self, provider))
        policy = self.bucket.arn.apply(lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
        aws.s3.BucketPolicy(f"{name}-tls-only", bucket=self.bucket.id, policy=policy,
                            opts=_opts(self, provider, depends_on=[pab]))
        self.bucket_name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.register_outputs({"bucket": self.bucket_name, "arn": self.arn})


#: The system node group (CoreDNS, the operators, the Ray head, the TLS front door and the hybrid router) is the
#: plan's ``Part.system_pool`` (decided in planner/optimizer/nodes.py, priced by the bill); it may grow to twice
#: its size.
SYSTEM_AMI_TYPE = "AL2023_x86_64_STANDARD"
#: The AWS Load Balancer Controller's service account (the chart's default name, in kube-system).
LBC_NAMESPACE, LBC_SERVICE_ACCOUNT = "kube-system", "aws-load-balancer-controller"


@dataclass(frozen=True)
class NodeGroupSpec:
    """The accelerator node group, sized from the plan. ``gpu_taint``: the device-plugin resource its nodes are
    tainted with (empty on CPU-only parts: no taint); ``accelerator``: the catalog id in the node label."""

    instance_type: str
    nodes: int
    max_nodes: int
    gpus_per_node: int
    spot: bool
    dedicated: bool
    disk_gib: int
    ami_type: str = "AL2023_x86_64_NVIDIA"
    gpu_taint: str = "nvidia.com/gpu"
    accelerator: str = ""


def lb_controller_policy() -> str:
    """What the AWS Load Balancer Controller needs to run Network Load Balancers for Services of type LoadBalancer
    (no Ingress/ALB, WAF, Shield or Cognito: mlplan creates none): describe calls, security groups and load
    balancers it creates (scoped by the ``elbv2.k8s.aws/cluster`` / ``service.k8s.aws/cluster`` tags it sets).
    Source: the controller's reference policy, docs/install/iam_policy.json of kubernetes-sigs/
    aws-load-balancer-controller (v2.14), narrowed to its Service (NLB) statements."""
    service_tag = "aws:ResourceTag/service.k8s.aws/cluster"
    elb = "elasticloadbalancing"
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
            "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
            "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
            "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeRouteTables",
            "ec2:GetSecurityGroupsForVpc", f"{elb}:DescribeLoadBalancers", f"{elb}:DescribeLoadBalancerAttributes",
            f"{elb}:DescribeListeners", f"{elb}:DescribeListenerAttributes", f"{elb}:DescribeListenerCertificates",
            f"{elb}:DescribeSSLPolicies", f"{elb}:DescribeTargetGroups", f"{elb}:DescribeTargetGroupAttributes",
            f"{elb}:DescribeTargetHealth", f"{elb}:DescribeTags", "acm:ListCertificates", "acm:DescribeCertificate"]},
        {"Sid": "ServiceLinkedRole", "Effect": "Allow", "Resource": "*", "Action": ["iam:CreateServiceLinkedRole"],
         "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
        {"Sid": "SecurityGroups", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:CreateSecurityGroup", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]},
        {"Sid": "TagNewSecurityGroups", "Effect": "Allow", "Resource": "arn:aws:ec2:*:*:security-group/*",
         "Action": ["ec2:CreateTags"], "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}},
        {"Sid": "OwnSecurityGroups", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:DeleteSecurityGroup", "ec2:CreateTags", "ec2:DeleteTags"],
         "Condition": {"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}},
        {"Sid": "CreateLoadBalancers", "Effect": "Allow", "Resource": "*",
         "Action": [f"{elb}:CreateLoadBalancer", f"{elb}:CreateTargetGroup", f"{elb}:CreateListener",
                    f"{elb}:AddTags"],
         "Condition": {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}}},
        {"Sid": "OwnLoadBalancers", "Effect": "Allow", "Resource": "*", "Action": [
            f"{elb}:ModifyLoadBalancerAttributes", f"{elb}:SetIpAddressType", f"{elb}:SetSecurityGroups",
            f"{elb}:SetSubnets", f"{elb}:DeleteLoadBalancer", f"{elb}:ModifyTargetGroup",
            f"{elb}:ModifyTargetGroupAttributes", f"{elb}:DeleteTargetGroup", f"{elb}:ModifyListener",
            f"{elb}:ModifyListenerAttributes", f"{elb}:DeleteListener", f"{elb}:AddTags", f"{elb}:RemoveTags",
            f"{elb}:RegisterTargets", f"{elb}:DeregisterTargets"],
         "Condition": {"Null": {service_tag: "false"}}},
    ]})


class EksGpuCluster(pulumi.ComponentResource):
    """EKS control plane, an untainted system node group and the accelerator node group (tainted with the device
    resource, labelled with its pool and accelerator), the OIDC provider, and IRSA roles for the serving pods (read
    the model bucket) and the AWS Load Balancer Controller."""

    def __init__(self, name: str, *, region: str, network: Network, kms_key_arn: pulumi.Input[str],
                 nodes: NodeGroupSpec, system: SystemPool, private_endpoint_only: bool,
                 bucket_arn: pulumi.Input[str], serving_namespace: str, serving_service_account: str,
                 irsa_role_name: str, provider: aws.Provider, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:aws:EksGpuCluster", name, None, opts)
        cluster_role = aws.iam.Role(f"{name}-cluster", assume_role_policy=assume_role_policy("eks.amazonaws.com"),
                                    tags=_tags(f"{name}-cluster"), opts=_opts(self, provider))
        attach = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy", role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", opts=_opts(self, provider))
        cluster_sg = aws.ec2.SecurityGroup(
            f"{name}-cluster-sg", vpc_id=network.vpc.id, description="EKS API: reachable from inside the VPC only",
            ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [network.cidr],
                      "description": "Kubernetes API from the VPC"}],
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            tags=_tags(f"{name}-cluster-sg"), opts=_opts(self, provider))
        self.cluster = aws.eks.Cluster(
            name, name=name, role_arn=cluster_role.arn, version=EKS_VERSION,
            vpc_config={"subnet_ids": network.private_subnet_ids, "security_group_ids": [cluster_sg.id],
                        "endpoint_private_access": True, "endpoint_public_access": not private_endpoint_only},
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            encryption_config={"resources": ["secrets"], "provider": {"key_arn": kms_key_arn}},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=_tags(name), opts=_opts(self, provider, depends_on=[attach]))

        node_role = aws.iam.Role(f"{name}-nodes", assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                                 tags=_tags(f"{name}-nodes"), opts=_opts(self, provider))
        node_attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-nodes-{short}", role=node_role.name,
                                         policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=_opts(self, provider))
            for short, policy in (("worker", "AmazonEKSWorkerNodePolicy"), ("cni", "AmazonEKS_CNI_Policy"),
                                  ("ecr", "AmazonEC2ContainerRegistryReadOnly"),
                                  ("ssm", "AmazonSSMManagedInstanceCore"))
        ]
        lt_args: dict[str, Any] = {}
        if nodes.dedicated:
            lt_args["placement"] = {"tenancy": "dedicated"}
        template = aws.ec2.LaunchTemplate(
            f"{name}-gpu", description=f"{nodes.instance_type} GPU nodes: IMDSv2, encrypted volumes",
            metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                              "http_put_response_hop_limit": 1},
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "volume_size": nodes.disk_gib, "volume_type": "gp3", "encrypted": "true",
                "kms_key_id": kms_key_arn, "delete_on_termination": "true"}}],
            tag_specifications=[{"resource_type": "instance", "tags": _tags(f"{name}-gpu")}],
            update_default_version=True, **lt_args, opts=_opts(self, provider))
        self.node_group = aws.eks.NodeGroup(
            f"{name}-gpu", cluster_name=self.cluster.name, node_role_arn=node_role.arn,
            subnet_ids=network.private_subnet_ids, instance_types=[nodes.instance_type], ami_type=nodes.ami_type,
            capacity_type="SPOT" if nodes.spot else "ON_DEMAND",
            scaling_config={"desired_size": nodes.nodes, "min_size": nodes.nodes, "max_size": nodes.max_nodes},
            update_config={"max_unavailable": 1},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels={"mlplan.dev/pool": "accelerators", "mlplan.dev/accelerator": nodes.accelerator,
                    "mlplan.dev/gpu": "true" if nodes.gpu_taint else "false",
                    "mlplan.dev/gpus-per-node": str(nodes.gpus_per_node)},
            taints=[{"key": nodes.gpu_taint, "value": "true", "effect": "NO_SCHEDULE"}] if nodes.gpu_taint else [],
            tags=_tags(f"{name}-gpu"), opts=_opts(self, provider, depends_on=node_attachments))
        system_template = aws.ec2.LaunchTemplate(
            f"{name}-system", description=f"{system.machine} system nodes: IMDSv2, encrypted volumes",
            metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                              "http_put_response_hop_limit": 1},
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "volume_size": system.disk_gib, "volume_type": "gp3", "encrypted": "true",
                "kms_key_id": kms_key_arn, "delete_on_termination": "true"}}],
            tag_specifications=[{"resource_type": "instance", "tags": _tags(f"{name}-system")}],
            update_default_version=True, **lt_args, opts=_opts(self, provider))
        self.system_node_group = aws.eks.NodeGroup(
            f"{name}-system", cluster_name=self.cluster.name, node_role_arn=node_role.arn,
            subnet_ids=network.private_subnet_ids, instance_types=[system.machine], ami_type=SYSTEM_AMI_TYPE,
            capacity_type="ON_DEMAND",
            scaling_config={"desired_size": system.nodes, "min_size": system.nodes, "max_size": 2 * system.nodes},
            update_config={"max_unavailable": 1},
            launch_template={"id": system_template.id, "version": system_template.latest_version.apply(str)},
            labels={"mlplan.dev/pool": "system"}, tags=_tags(f"{name}-system"),
            opts=_opts(self, provider, depends_on=node_attachments))

        issuer = self.cluster.identities.apply(lambda ids: ids[0]["oidcs"][0]["issuer"]
                                               if isinstance(ids[0], dict) else ids[0].oidcs[0].issuer)
        self.oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"],
                                                  tags=_tags(f"{name}-oidc"), opts=_opts(self, provider))

        def irsa_trust(namespace: str, account: str) -> pulumi.Output[str]:
            def doc(args: list[Any]) -> str:
                arn, url = args
                host = url.removeprefix("https://")
                return json.dumps({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Federated": arn}, "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{host}:sub": f"system:serviceaccount:{namespace}:{account}",
                                                   f"{host}:aud": "sts.amazonaws.com"}}}]})
            return pulumi.Output.all(self.oidc.arn, self.oidc.url).apply(doc)

        self.serving_role = aws.iam.Role(
            f"{name}-serving", name=irsa_role_name,
            assume_role_policy=irsa_trust(serving_namespace, serving_service_account),
            tags=_tags(irsa_role_name), opts=_opts(self, provider))
        self.lb_controller_role = aws.iam.Role(
            f"{name}-lb-controller", assume_role_policy=irsa_trust(LBC_NAMESPACE, LBC_SERVICE_ACCOUNT),
            tags=_tags(f"{name}-lb-controller"), opts=_opts(self, provider))
        aws.iam.RolePolicy(f"{name}-lb-controller", role=self.lb_controller_role.id, policy=lb_controller_policy(),
                           opts=_opts(self, provider))
        aws.iam.RolePolicy(f"{name}-serving-read-models", role=self.serving_role.id,
                           policy=pulumi.Output.all(bucket_arn, kms_key_arn).apply(
                               lambda a: bucket_read_policy(a[0], a[1])),
                           opts=_opts(self, provider))
        self.kubeconfig = pulumi.Output.all(self.cluster.name, self.cluster.endpoint,
                                            self.cluster.certificate_authority).apply(
            lambda a: kubeconfig(a[0], a[1], a[2], region))
        self.vpc_id = network.vpc.id
        self.register_outputs({"cluster_name": self.cluster.name, "serving_role_arn": self.serving_role.arn})


def kubeconfig(cluster: str, endpoint: str, ca: Any, region: str) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (no long-lived credentials in state)."""
    data = ca.get("data") if isinstance(ca, dict) else getattr(ca, "data", None)
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": cluster,
        "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": data}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "users": [{"name": cluster, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster, "--region", region]}}}],
    }, sort_keys=True)


class Ec2GpuServer(pulumi.ComponentResource):
    """One GPU instance running the model server in Docker: for plans of one node with one GPU.

    Private subnet, no public IP, IMDSv2 required, KMS-encrypted root volume, SSM Session Manager instead of SSH
    (no key pair, no port 22), ingress only on the serving port from inside the VPC.
    """

    def __init__(self, name: str, *, network: Network, instance_type: str, kms_key_arn: pulumi.Input[str],
                 bucket_arn: pulumi.Input[str], user_data: str, disk_gib: int, dedicated: bool, port: int,
                 provider: aws.Provider, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:aws:Ec2GpuServer", name, None, opts)
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=network.vpc.id, description="model server: serving port from the VPC only",
            ingress=[{"protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": [network.cidr],
                      "description": "inference from inside the VPC"}],
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            tags=_tags(f"{name}-sg"), opts=_opts(self, provider))
        role = aws.iam.Role(f"{name}-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                            tags=_tags(f"{name}-role"), opts=_opts(self, provider))
        aws.iam.RolePolicyAttachment(f"{name}-ssm", role=role.name,
                                     policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
                                     opts=_opts(self, provider))
        aws.iam.RolePolicy(f"{name}-read-models", role=role.id,
                           policy=pulumi.Output.all(bucket_arn, kms_key_arn).apply(
                               lambda a: bucket_read_policy(a[0], a[1])),
                           opts=_opts(self, provider))
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=_opts(self, provider))
        ami = aws.ssm.get_parameter_output(name=DLAMI_SSM, opts=pulumi.InvokeOutputOptions(provider=provider))
        self.instance = aws.ec2.Instance(
            name, ami=ami.value, instance_type=instance_type, subnet_id=network.private_subnets[0].id,
            vpc_security_group_ids=[sg.id], iam_instance_profile=profile.name, associate_public_ip_address=False,
            metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                              "http_put_response_hop_limit": 2},
            root_block_device={"volume_size": disk_gib, "volume_type": "gp3", "encrypted": True,
                               "kms_key_id": kms_key_arn},
            tenancy="dedicated" if dedicated else "default", user_data=user_data,
            user_data_replace_on_change=True, monitoring=True, tags=_tags(name),
            opts=_opts(self, provider, ignore_changes=["ami"]))
        self.register_outputs({"instance_id": self.instance.id, "private_ip": self.instance.private_ip})

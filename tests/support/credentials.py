"""Content Credentials made in the tests: a throwaway certificate authority that signs real files with C2PA
manifests (an ES256 leaf with the key usages c2pa-rs asks for), and the IPTC DigitalSourceType values they claim."""

from __future__ import annotations

import datetime

import c2pa

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
AI = IPTC + "trainedAlgorithmicMedia"
CAMERA = IPTC + "digitalCapture"


class ThrowawayCA:
    """A root and an ES256 signing certificate under it, made fresh for this test session."""

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.timezone.utc)

        def name(common: str) -> x509.Name:
            return x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, common),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Throwaway Test Signer"),
                ]
            )

        def usage(**flags) -> x509.KeyUsage:
            names = (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            )
            return x509.KeyUsage(**{n: flags.get(n, False) for n in names})

        def certificate(subject, issuer, key, signing_key, extensions):
            builder = x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            builder = builder.serial_number(x509.random_serial_number())
            builder = builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(
                now + datetime.timedelta(days=30)
            )
            for extension, critical in extensions:
                builder = builder.add_extension(extension, critical=critical)
            return builder.sign(signing_key, hashes.SHA256())

        root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        root = certificate(
            name("Throwaway Root"),
            name("Throwaway Root"),
            root_key,
            root_key,
            [
                (x509.BasicConstraints(ca=True, path_length=None), True),
                (usage(key_cert_sign=True, crl_sign=True), True),
                (x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False),
            ],
        )
        leaf = certificate(
            name("Throwaway Leaf"),
            root.subject,
            leaf_key,
            root_key,
            [
                (usage(digital_signature=True), True),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False),
                (x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False),
                (x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False),
            ],
        )
        pem = serialization.Encoding.PEM
        self.root_pem = root.public_bytes(pem)
        self.chain_pem = leaf.public_bytes(pem) + self.root_pem
        self.key_pem = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def sign(self, source, target, mime: str, source_type: str, agent: str = "DALL-E") -> None:
        manifest = {
            "claim_generator_info": [{"name": "ProvenanceTest", "version": "1.0"}],
            "title": target.name,
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [
                            {"action": "c2pa.created", "digitalSourceType": source_type, "softwareAgent": {"name": agent}}
                        ]
                    },
                }
            ],
        }
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(alg=b"es256", sign_cert=self.chain_pem, private_key=self.key_pem, ta_url=None)
        )
        with open(source, "rb") as src, open(target, "wb") as dst, c2pa.Builder(manifest) as builder:
            builder.sign(signer, mime, src, dst)

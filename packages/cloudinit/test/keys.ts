/** Real public keys (generated with ssh-keygen for these tests; the private halves were discarded). */
export const ED25519 =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8VzhjWFbBq/9TvMXb3W4nTvgOAxLc9NfZ72y4v31ZZ alice@example';
export const ECDSA_NO_COMMENT =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPHmgCYTbTG/Bm/MR0MTHeDCAcl/O1at37CL6CVah/Cv7FwHQ0Nfu6/vRRpcwveMxABx5Os+TBaP6BB3cIRpRuY=';
export const RSA_ODD_COMMENT =
  'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCzmUoq+3rMsauF+D3OPWbZqsEBdo59cswX2J+wKDenF6vjOvU6+CghKWl9a0Nes5Z/wvT+ijqwZ1yTOoze664wHEWANQBULTVEsFwC6Zhkc4z4dke4Gz1ca8fbopE5pcRzbZGlh9n6KsCxBvobJraAZWA8ysa6aeUfHM1rdjPjew== bob: "x" #1';

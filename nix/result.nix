# mkResult, the one wrapper every public function returns through: the
# derivation with its passthru attributes on top (also kept as .passthru),
# meta, and, as nixpkgs' lib.makeOverridable, .override.
{
  # drv: the derivation (or an earlier result, with its passthru and meta).
  # function, args: what made it; result.override CHANGES is `function`
  # called again with `args` updated by CHANGES, an attribute set or a
  # function of the old arguments (for a list argument: the new list).
  mkResult = { drv, passthru ? { }, meta ? { }, function ? null, args ? { } }:
    drv // passthru // { inherit passthru meta; }
    // (if function == null then { } else {
      override = changes:
        let new = if builtins.isFunction changes then changes args else changes;
        in function (if builtins.isAttrs args then args // new else new);
    });
}

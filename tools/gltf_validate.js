// Validate a .glb with the Khronos glTF validator (npm package gltf-validator); prints the report's counts as JSON.
// usage: node tools/gltf_validate.js PATH/TO/node_modules/gltf-validator FILE.glb
const validator = require(process.argv[2]);
const fs = require("fs");
const data = new Uint8Array(fs.readFileSync(process.argv[3]));
validator.validateBytes(data).then(
  (r) => console.log(JSON.stringify({ errors: r.issues.numErrors, warnings: r.issues.numWarnings,
                                      messages: r.issues.messages.filter((m) => m.severity <= 1) })),
  (e) => { console.error(String(e)); process.exit(1); });

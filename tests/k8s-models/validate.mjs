// Reads a JSON array of Kubernetes objects on stdin and validates each Istio or Gateway API
// object, Gateway API object and cert-manager object against its CRD schema (@kubernetes-models).
// Prints one line per problem; exit 1 if any.
import * as istioNetworking from "@kubernetes-models/istio/networking.istio.io";
import * as istioSecurity from "@kubernetes-models/istio/security.istio.io";
import * as gatewayApi from "@kubernetes-models/gateway-api/gateway.networking.k8s.io";
import * as certManager from "@kubernetes-models/cert-manager/cert-manager.io";

export const groups = {
  "networking.istio.io": istioNetworking,
  "security.istio.io": istioSecurity,
  "gateway.networking.k8s.io": gatewayApi,
  "cert-manager.io": certManager,
};

const input = await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
});

let problems = 0;
let checked = 0;
for (const object of JSON.parse(input)) {
  const [group, version] = object.apiVersion.split("/");
  const models = groups[group];
  if (!models) continue;
  const model = models[version]?.[object.kind];
  if (!model) {
    console.log(`${object.apiVersion} ${object.kind}: no schema known`);
    problems += 1;
    continue;
  }
  try {
    new model(object).validate();
    checked += 1;
  } catch (error) {
    console.log(`${object.apiVersion} ${object.kind} ${object.metadata?.name}: ${error.message}`);
    problems += 1;
  }
}
console.log(`checked ${checked}`);
process.exit(problems ? 1 : 0);

package config

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// envControllerGen names the controller-gen binary; `make test` exports it
// (and installs the binary once per machine).
const envControllerGen = "CONTROLLER_GEN"

// TestGeneratedUpToDate runs controller-gen as `make generate manifests`
// does, into a temporary directory, and fails when a committed generated
// file differs: someone changed a marker or a type without regenerating.
func TestGeneratedUpToDate(t *testing.T) {
	cg := os.Getenv(envControllerGen)
	if cg == "" {
		t.Fatalf("%s is not set: run `make test`, or set it to a controller-gen binary (make installs one under ~/.cache/secrethub/)", envControllerGen)
	}
	if _, err := os.Stat(cg); err != nil {
		t.Fatalf("%s=%s: %v (make test installs it)", envControllerGen, cg, err)
	}
	out := t.TempDir()
	// Keep these arguments in step with the generate and manifests targets
	// of the Makefile.
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(cg, args...)
		cmd.Dir = ".."
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen %v: %v\n%s", args, err, b)
		}
	}
	run("object", "paths=./api/...", "output:object:dir="+filepath.Join(out, "object"))
	run("crd", "rbac:roleName=manager-role", "webhook", "paths=./api/...", "paths=./controllers/...", "paths=./webhook/...",
		"output:crd:artifacts:config="+filepath.Join(out, "crd"),
		"output:rbac:artifacts:config="+filepath.Join(out, "rbac"),
		"output:webhook:artifacts:config="+filepath.Join(out, "webhook"))

	compareDir(t, filepath.Join(out, "object"), "../api/v1alpha1", "make generate", "zz_generated.deepcopy.go")
	compareDir(t, filepath.Join(out, "crd"), "crd/bases", "make manifests", "")
	compareDir(t, filepath.Join(out, "rbac"), "rbac", "make manifests", "role.yaml")
	compareDir(t, filepath.Join(out, "webhook"), "webhook", "make manifests", "manifests.yaml")
}

// compareDir checks that every file controller-gen wrote into got is in
// want with the same contents. With only empty, every file of want must
// also have been generated (want holds nothing else); otherwise only the
// named file is expected.
func compareDir(t *testing.T, got, want, fix, only string) {
	t.Helper()
	gotNames := names(t, got)
	if only != "" && !slices.Equal(gotNames, []string{only}) {
		t.Fatalf("controller-gen wrote %v into %s, want only %s", gotNames, got, only)
	}
	for _, n := range gotNames {
		g, err := os.ReadFile(filepath.Join(got, n))
		if err != nil {
			t.Fatal(err)
		}
		w, err := os.ReadFile(filepath.Join(want, n))
		if err != nil {
			t.Errorf("%s: %v: run `%s` and commit it", filepath.Join(want, n), err, fix)
			continue
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s is stale: run `%s` and commit it", filepath.Join(want, n), fix)
		}
	}
	if only == "" {
		for _, n := range names(t, want) {
			if !slices.Contains(gotNames, n) {
				t.Errorf("%s is not generated any more: delete it (`%s` does not)", filepath.Join(want, n), fix)
			}
		}
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

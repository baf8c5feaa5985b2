package scwsim_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/lghs/lghsctl/internal/lab/scwsim"
	"github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"
)

// A stand-in on a local port, used by the unchanged SDK. In the lab, serve it
// on the lab box address (Sim.Serve) and give lghsctl SCW_API_URL.
func Example() {
	sim, err := scwsim.New(scwsim.Config{
		SecretKeys: []string{"11111111-1111-4111-8111-111111111111"},
		Projects:   []scwsim.Project{{ID: "22222222-2222-4222-8222-222222222222"}},
		Machines:   scwsim.NewFakeMachines(), // the lab passes real hosts here
		Timings:    scwsim.FastTimings(),
	})
	if err != nil {
		panic(err)
	}
	defer sim.Close(context.Background())
	srv := httptest.NewServer(sim)
	defer srv.Close()

	client, _ := scw.NewClient(scw.WithAPIURL(srv.URL),
		scw.WithAuth("SCWXXXXXXXXXXXXXXXXX", "11111111-1111-4111-8111-111111111111"),
		scw.WithDefaultProjectID("22222222-2222-4222-8222-222222222222"), scw.WithDefaultZone(scw.ZoneFrPar1))
	api := instance.NewAPI(client)
	created, err := api.CreateServer(&instance.CreateServerRequest{Name: "lghs-chat", CommercialType: "DEV1-M",
		Image: scw.StringPtr("debian_trixie")})
	if err != nil {
		panic(err)
	}
	root := created.Server.Volumes["0"]
	fmt.Println(created.Server.State, root.VolumeType, *root.Size/scw.GB, "GB")
	fmt.Println(len(sim.WriteCalls()), "write call")
	// Output:
	// stopped l_ssd 40 GB
	// 1 write call
}

package inventory

import (
	"testing"
	"time"
)

// TestMigrateDefaultsComeFromTheTargetSite: the site, the database
// service and the uploads directory are derived from the target's only
// app; methods, state directory, cutover TTL and each rung's backup and
// timeout get their documented defaults; setting values are typed.
func TestMigrateDefaultsComeFromTheTargetSite(t *testing.T) {
	f, err := Parse("migrate.yaml", []byte(`version: 1
name: lghs
dns:
  zones: [{name: lghs.be}]
acme: {email: infra@lghs.be}
hosts:
  - name: chat
    provider: none
    ssh: {address: 192.0.2.10}
    sites:
      - name: chat.lghs.be
        upstream: "[::1]:3000"
        app:
          dir: /srv/chat.lghs.be
          preset: rocketchat
          services: [{name: rocketchat, image: "rocketchat/rocket.chat:3.0.12"}]
migrate:
  from:
    ssh: {address: 185.217.152.58}
    uploads_dir: /var/snap/rocketchat-server/common/uploads
  to: chat
  ladder:
    - app: rocketchat/rocket.chat:3.18.2
      before:
        - set_setting: {id: Accounts_OAuth_Custom-Authlghsbe, value: false}
        - set_setting: {id: Message_MaxAllowedSize, value: 5000}
        - set_setting: {id: Site_Name, value: LgHS chat}
        - drop_indexes: [users, rocketchat_room]
        - unlock_migrations: true
      after:
        - wait_log: SERVER RUNNING
    - app: rocketchat/rocket.chat:4.8.6
      database: mongo:4.4
      feature_compatibility: "4.4"
      backup: false
      timeout: 30m
`))
	if err != nil {
		t.Fatal(err)
	}
	m := f.Migrate
	got := map[string]any{
		"site": m.Site, "engine": m.Engine, "source": m.Source, "target": m.Target,
		"database_service": m.DatabaseService, "target_mongo_uri": m.TargetMongoURI,
		"uploads_to": m.UploadsTo, "state_dir": m.StateDir, "cutover_ttl": m.CutoverTTL, "mongodump": m.From.Mongodump,
		"rung0 backup": *m.Ladder[0].Backup, "rung0 timeout": time.Duration(m.Ladder[0].Timeout),
		"rung1 backup": *m.Ladder[1].Backup, "rung1 timeout": time.Duration(m.Ladder[1].Timeout),
		"false": m.Ladder[0].Before[0].SetSetting.Value.Value(), "5000": m.Ladder[0].Before[1].SetSetting.Value.Value(),
		"string": m.Ladder[0].Before[2].SetSetting.Value.Value(),
	}
	want := map[string]any{
		"site": "chat.lghs.be", "engine": "builtin", "source": "mongodump", "target": "driver",
		"database_service": "mongo", "target_mongo_uri": "mongodb://127.0.0.1:27017",
		"uploads_to": "/srv/chat.lghs.be/data/uploads", "state_dir": "/var/lib/lghsctl/migrate", "cutover_ttl": 60, "mongodump": "mongodump",
		"rung0 backup": true, "rung0 timeout": 15 * time.Minute,
		"rung1 backup": false, "rung1 timeout": 30 * time.Minute,
		"false": false, "5000": int32(5000), "string": "LgHS chat",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
}

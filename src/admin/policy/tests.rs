//! The role and scope policy, case by case.

use super::*;

fn actor(role: Role) -> Actor {
    Actor {
        org: organization::Model {
            id: "org_1".into(),
            slug: "acme".into(),
            name: "Acme".into(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            dpop_required: None,
            dpop_nonce: None,
            dynamic_registration: None,
            direct_api_keys: None,
            self_registration: None,
            registration_approval: None,
        },
        user_id: "usr_me".into(),
        role,
        scopes: Scopes::all(),
        key_id: Some("key_mine".into()),
        act: None,
        chain: None,
        token_type: TokenType::Bearer,
        meta: RequestMeta::default(),
    }
}

const OWN_KEY: Target<'static> = Target::Key {
    owner: "usr_me",
    owner_role: None,
    id: Some("key_other_of_mine"),
    scopes: None,
};
const OTHER_KEY: Target<'static> = Target::Key {
    owner: "usr_x",
    owner_role: Some(Role::Member),
    id: Some("key_x"),
    scopes: None,
};
const ADMINS_KEY: Target<'static> = Target::Key {
    owner: "usr_a",
    owner_role: Some(Role::Admin),
    id: Some("key_a"),
    scopes: None,
};
const OWNERS_KEY: Target<'static> = Target::Key {
    owner: "usr_o",
    owner_role: Some(Role::Owner),
    id: Some("key_o"),
    scopes: None,
};

#[test]
fn role_matrix() {
    use Role::*;
    let member_user = Target::User {
        id: "usr_x",
        role: Member,
    };
    let owner_user = Target::User {
        id: "usr_o",
        role: Owner,
    };
    let me = |role| Target::User { id: "usr_me", role };
    let rename = Action::UsersUpdate {
        role: None,
        disable: false,
        link: false,
    };
    let link = Action::UsersUpdate {
        role: None,
        disable: false,
        link: true,
    };
    // (action, target, [owner, admin, member, service])
    let rows: Vec<(Action, Target<'_>, [bool; 4])> = vec![
        (Action::KeysRead, Target::Listing, [true, true, true, true]),
        (Action::KeysRead, OWN_KEY, [true, true, true, true]),
        (Action::KeysRead, OTHER_KEY, [true, true, false, false]),
        (Action::KeysRevoke, OWN_KEY, [true, true, true, true]),
        (Action::KeysRevoke, OTHER_KEY, [true, true, false, false]),
        (
            Action::KeysRotate { immediate: false },
            OTHER_KEY,
            [true, true, false, false],
        ),
        // Nobody issues a credential of someone who outranks them.
        (Action::KeysCreate, OTHER_KEY, [true, true, false, false]),
        (Action::KeysCreate, ADMINS_KEY, [true, true, false, false]),
        (Action::KeysCreate, OWNERS_KEY, [true, false, false, false]),
        (
            Action::KeysRotate { immediate: false },
            ADMINS_KEY,
            [true, true, false, false],
        ),
        (
            Action::KeysRotate { immediate: false },
            OWNERS_KEY,
            [true, false, false, false],
        ),
        // Reading and revoking an owner's key issues nothing.
        (Action::KeysRead, OWNERS_KEY, [true, true, false, false]),
        (Action::KeysRevoke, OWNERS_KEY, [true, true, false, false]),
        (Action::UsersRead, Target::Listing, [true, true, true, true]),
        (Action::UsersRead, member_user, [true, true, false, false]),
        (
            Action::UsersCreate,
            Target::NewUser { role: Member },
            [true, true, false, false],
        ),
        (
            Action::UsersCreate,
            Target::NewUser { role: Owner },
            [true, false, false, false],
        ),
        (rename, member_user, [true, true, false, false]),
        (rename, owner_user, [true, false, false, false]),
        (rename, me(Member), [true, true, true, true]),
        (link, me(Member), [true, true, false, false]),
        (link, member_user, [true, true, false, false]),
        (
            Action::IssuersRead,
            Target::Listing,
            [true, true, false, false],
        ),
        (
            Action::IssuersWrite,
            Target::Issuer { id: None },
            [true, false, false, false],
        ),
        (Action::UsersDelete, member_user, [true, true, false, false]),
        (Action::UsersDelete, owner_user, [true, false, false, false]),
        (
            Action::SessionsRevoke,
            Target::Session {
                user_id: "usr_x",
                id: Some("ses_x"),
            },
            [true, true, false, false],
        ),
        (
            Action::SessionsRevoke,
            Target::Session {
                user_id: "usr_me",
                id: Some("ses_me"),
            },
            [true, true, true, true],
        ),
        (
            Action::AuditRead,
            Target::Listing,
            [true, true, false, false],
        ),
        (
            Action::ResourcesRead,
            Target::Listing,
            [true, true, false, false],
        ),
        (
            Action::ResourcesWrite,
            Target::Resource { id: None },
            [true, true, false, false],
        ),
        (
            Action::ConsentsRead,
            member_user,
            [true, true, false, false],
        ),
        (
            Action::ConsentsRevoke,
            member_user,
            [true, true, false, false],
        ),
        (
            Action::ConsentsRead,
            owner_user,
            [true, false, false, false],
        ),
        (
            Action::ConsentsRevoke,
            owner_user,
            [true, false, false, false],
        ),
        (Action::ConsentsRead, me(Member), [true, true, true, true]),
        (Action::ConsentsRevoke, me(Owner), [true, true, true, true]),
        (
            Action::ClientsRead,
            Target::Listing,
            [true, true, false, false],
        ),
        (
            Action::ClientsRead,
            Target::Client { id: Some("cli_x") },
            [true, true, false, false],
        ),
        (
            Action::ClientsWrite,
            Target::Client { id: None },
            [true, true, false, false],
        ),
    ];
    for (action, target, expected) in rows {
        for (role, allowed) in [Owner, Admin, Member, Service].into_iter().zip(expected) {
            assert_eq!(
                authorize(&actor(role), action, target).is_ok(),
                allowed,
                "{role} {} {target:?}",
                action.name()
            );
        }
    }
}

#[test]
fn nobody_revokes_their_own_credential_or_raises_their_role() {
    for role in Role::ALL.iter().copied() {
        let a = actor(role);
        let current = Target::Key {
            owner: "usr_me",
            owner_role: Some(role),
            id: Some("key_mine"),
            scopes: None,
        };
        assert!(authorize(&a, Action::KeysRevoke, current).is_err());
        assert!(authorize(&a, Action::KeysRotate { immediate: true }, current).is_err());
        assert!(authorize(&a, Action::KeysRotate { immediate: false }, current).is_ok());
        let me = Target::User { id: "usr_me", role };
        let raise = Action::UsersUpdate {
            role: Some(Role::Owner),
            disable: false,
            link: false,
        };
        assert_eq!(authorize(&a, raise, me).is_ok(), role == Role::Owner);
        let disable = Action::UsersUpdate {
            role: None,
            disable: true,
            link: false,
        };
        assert!(authorize(&a, disable, me).is_err());
        assert!(authorize(&a, Action::UsersDelete, me).is_err());
    }
}

#[test]
fn a_missing_scope_is_insufficient_scope_naming_it() {
    let mut a = actor(Role::Owner);
    a.scopes = Scopes::parse(["keys:read"]).unwrap();
    assert!(authorize(&a, Action::KeysRead, Target::Listing).is_ok());
    assert_eq!(
        authorize(&a, Action::KeysCreate, OWN_KEY),
        Err(Denial::InsufficientScope {
            scope: "keys:write",
            scheme: TokenType::Bearer
        })
    );
}

#[test]
fn a_key_issued_never_carries_a_scope_the_callers_token_lacks() {
    let narrow = Scopes::parse(["keys:read", "keys:write"]).unwrap();
    let wide = Scopes::all();
    for role in Role::ALL.iter().copied() {
        let mut a = actor(role);
        a.scopes = narrow.clone();
        let own = |scopes| Target::Key {
            owner: "usr_me",
            owner_role: Some(role),
            id: Some("key_other_of_mine"),
            scopes: Some(scopes),
        };
        for action in [Action::KeysCreate, Action::KeysRotate { immediate: false }] {
            assert!(authorize(&a, action, own(&narrow)).is_ok(), "{role}");
            assert_eq!(
                authorize(&a, action, own(&wide)).map_err(|d| d.code()),
                Err("permission_denied"),
                "{role} {}",
                action.name()
            );
        }
    }
}

#[test]
fn ranks() {
    use Role::*;
    assert!(Owner.ranks_at_least(Owner));
    assert!(Admin.ranks_at_least(Admin));
    assert!(!Admin.ranks_at_least(Owner));
    assert!(Member.ranks_at_least(Service));
    assert!(Service.ranks_at_least(Member));
    assert!(!Service.ranks_at_least(Admin));
}

/// Every action, with each kind of parameter it takes (a new action must be added here).
fn all_actions() -> Vec<Action> {
    let mut all = vec![
        Action::KeysRead,
        Action::KeysCreate,
        Action::KeysRevoke,
        Action::KeysRotate { immediate: false },
        Action::KeysRotate { immediate: true },
        Action::UsersRead,
        Action::UsersCreate,
        Action::UsersDelete,
        Action::SessionsRead,
        Action::SessionsRevoke,
        Action::AuditRead,
        Action::GrantsRead,
        Action::IssuersRead,
        Action::IssuersWrite,
        Action::ResourcesRead,
        Action::ResourcesWrite,
        Action::ConsentsRead,
        Action::ConsentsRevoke,
        Action::ClientsRead,
        Action::ClientsWrite,
    ];
    for role in Role::ALL {
        all.push(Action::GrantsCreate { role: *role });
        all.push(Action::GrantsRevoke { role: *role });
        all.push(Action::UsersUpdate {
            role: Some(*role),
            disable: false,
            link: false,
        });
    }
    for (disable, link) in [(false, false), (true, false), (false, true)] {
        all.push(Action::UsersUpdate {
            role: None,
            disable,
            link,
        });
    }
    all
}

/// A scope a person may approve for a browser client is exactly one that lets a token do
/// something the person's role may do: approving more would hand an agent a name for
/// nothing, approving less would make the consent page refuse what the person can do.
#[test]
fn grantable_scopes_are_those_the_role_can_use() {
    let me = |role| Target::User { id: "usr_me", role };
    for role in Role::ALL.iter().copied() {
        let targets = [
            Target::Listing,
            OWN_KEY,
            OTHER_KEY,
            me(role),
            Target::User {
                id: "usr_x",
                role: Role::Member,
            },
            Target::NewUser { role: Role::Member },
            Target::Session {
                user_id: "usr_me",
                id: Some("ses_mine"),
            },
            Target::Grant { id: None },
            Target::Issuer { id: None },
            Target::Resource { id: None },
            Target::Client { id: None },
        ];
        for scope in KNOWN_SCOPES {
            let usable = all_actions().into_iter().any(|action| {
                action.scope() == *scope
                    && targets
                        .iter()
                        .any(|t| authorize(&actor(role), action, *t).is_ok())
            });
            assert_eq!(
                grantable(role, scope),
                usable,
                "{role} {scope} (a new action or scope? add it to all_actions)"
            );
        }
        assert!(!grantable(role, "mcp:tools"), "not one of keygate's scopes");
    }
}

import { Router } from 'express';
import {
  CreateSecurityGroupRequest,
  DescribeSecurityGroupsQuery,
  InstanceId,
  ModifyInstanceSecurityGroupsRequest,
  RevokeSecurityGroupRulesRequest,
  SecurityGroupId,
  SecurityGroupRuleId,
  SecurityGroupRulesRequest,
} from '@minicloud/contracts';
import { parse } from '../http.js';
import type { SecurityGroupService } from '../services/security-groups.js';

/** Security groups, their rules, and an instance's groups. */
export function securityGroupsRouter(groups: SecurityGroupService): Router {
  const r = Router();
  r.post('/security-groups', async (req, res) => {
    res.status(201).json(await groups.create(parse(CreateSecurityGroupRequest, req.body)));
  });
  r.get('/security-groups', async (req, res) => {
    const q = parse(DescribeSecurityGroupsQuery, req.query);
    res.json({ securityGroups: await groups.describe({ vpcId: q.vpcId }) });
  });
  r.get('/security-groups/:groupId', async (req, res) => {
    res.json(await groups.get(parse(SecurityGroupId, req.params.groupId)));
  });
  r.delete('/security-groups/:groupId', async (req, res) => {
    res.json(await groups.delete(parse(SecurityGroupId, req.params.groupId)));
  });
  for (const direction of ['ingress', 'egress'] as const) {
    const isEgress = direction === 'egress';
    r.post(`/security-groups/:groupId/${direction}`, async (req, res) => {
      const id = parse(SecurityGroupId, req.params.groupId);
      const { rules } = parse(SecurityGroupRulesRequest, req.body);
      res.status(201).json(await groups.authorize(id, isEgress, rules));
    });
    // Revoke by rule (as EC2's RevokeSecurityGroupIngress) or by securityGroupRuleIds.
    r.post(`/security-groups/:groupId/${direction}/revoke`, async (req, res) => {
      const id = parse(SecurityGroupId, req.params.groupId);
      res.json(await groups.revoke(id, isEgress, parse(RevokeSecurityGroupRulesRequest, req.body)));
    });
    r.delete(`/security-groups/:groupId/${direction}`, async (req, res) => {
      const id = parse(SecurityGroupId, req.params.groupId);
      res.json(await groups.revoke(id, isEgress, parse(RevokeSecurityGroupRulesRequest, req.body)));
    });
  }
  r.delete('/security-groups/:groupId/rules/:ruleId', async (req, res) => {
    const id = parse(SecurityGroupId, req.params.groupId);
    const ruleId = parse(SecurityGroupRuleId, req.params.ruleId);
    res.json(await groups.revoke(id, null, { securityGroupRuleIds: [ruleId] }));
  });
  r.put('/instances/:instanceId/security-groups', async (req, res) => {
    const { securityGroupIds } = parse(ModifyInstanceSecurityGroupsRequest, req.body);
    res.json(
      await groups.setInstanceGroups(parse(InstanceId, req.params.instanceId), securityGroupIds),
    );
  });
  return r;
}
